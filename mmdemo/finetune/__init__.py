"""Fine-tuning runs from stored corrections: a generic run harness (`runs`) and one module per kind of run."""
