"""Pixel- and object-level metrics shared by training and evaluation."""
