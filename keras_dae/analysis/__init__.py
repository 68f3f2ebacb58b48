"""Looking inside a trained model: couplings metrics, mean Jacobian, figures, the couplings report."""
