"""Plugin folders shipped with the suite (mapped here in wheels)."""
