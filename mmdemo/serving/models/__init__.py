"""Model adapters, one module per model family. `base` holds the task interfaces they implement."""
