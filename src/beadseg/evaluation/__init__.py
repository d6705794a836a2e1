"""Scoring predictions against truth: a checkpoint's, the classical baseline's, or any tool's saved masks."""
