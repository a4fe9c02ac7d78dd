"""leanline's pipeline: configuration, wiring and runners."""
