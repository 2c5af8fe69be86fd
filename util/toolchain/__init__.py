"""The TensorFlow tool chain: save formats, compiling to TFLite, verification, the CLI (never imported by serving)."""
