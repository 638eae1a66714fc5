"""Frontends: turn a model (ONNX file, ...) into a forward IR graph.

Each frontend lives in its own module so importing one does not pull in the
dependencies of the others (e.g. `tte.frontends.onnx_frontend.load_onnx`).
"""
