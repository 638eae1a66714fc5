# Everything a fresh Debian machine with Python 3.11 needs is installed from here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench clean toolchains

# Cross toolchains and emulators for the MCU targets (targets/cortex_m, targets/riscv); apt
# only runs when a package is missing, so a machine that has them is not touched.
MCU_PACKAGES := gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm \
                clang-16 lld-16 picolibc-riscv64-unknown-elf binutils-riscv64-unknown-elf \
                gcc-riscv64-unknown-elf qemu-system-misc

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV) || { apt-get update && apt-get install -y python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,demo,bench]'
	touch $@

demo: $(STAMP)
	$(BIN)/python examples/digits_demo.py

toolchains:
	@missing=$$(for p in $(MCU_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	    | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	        --no-install-recommends $$missing; \
	fi

test: $(STAMP) toolchains
	$(BIN)/python -m pytest -q tests

bench: $(STAMP) toolchains
	$(BIN)/python benchmarks/memory.py
	$(BIN)/python benchmarks/jax_frontend_memory.py
	$(BIN)/python benchmarks/mcu_cost.py
	$(BIN)/python benchmarks/host_step.py
	$(BIN)/python benchmarks/transfer.py --dataset faces
	$(BIN)/python benchmarks/transfer.py --dataset faces --head int8
	$(BIN)/python benchmarks/transfer.py --dataset digits --limit 1500 --steps 2000
	$(BIN)/python benchmarks/transfer.py --dataset digits --limit 1500 --steps 2000 --head int8
	# the scheme search of issue 5 on MCUNet-5FPS (about 20 minutes on 2 cores)
	start=$$(date +%s); $(BIN)/tte search ../shared/models/mcu_imagenet/mcunet-5fps.pkl \
	    --sram 256K --flash 1M --data digits --limit 1000 --analysis-size 64 \
	    --input-size 128 --int8-input --steps 700 --no-progress --verify \
	    -o benchmarks/results/search_mcunet-5fps.json > benchmarks/results/search_mcunet-5fps.txt; \
	    echo "wall time: $$(( $$(date +%s) - start )) s" >> benchmarks/results/search_mcunet-5fps.txt; \
	    cat benchmarks/results/search_mcunet-5fps.txt

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
