"""Know the data before training: fingerprint, label QA, recommendation, figures and a report."""
