"""What runs at each agency: connector definitions applied to an extract, and the push client."""
