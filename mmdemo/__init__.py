"""mmdemo: a multimodal demo and annotation studio."""

__version__ = "0.1.0"
