"""Shipboard: a self-hosted release control plane."""

__version__ = "0.1.0"
