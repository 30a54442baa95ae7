"""Golden data shipped with lbfgs_verify: published optima (with citations) and recorded traces."""
