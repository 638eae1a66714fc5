"""Integer arithmetic of quantized (int8) graphs: TFLite's fixed-point rules and QAS."""
