"""Read the logs of runs and sweeps and turn them into figures and a REPORT.md."""
