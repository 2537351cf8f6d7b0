"""Model serving: the registry (devices, loading, versions), the catalog per profile, one adapter a family."""
