"""Evaluation: exactness certificates, importance sampling, result tables."""
