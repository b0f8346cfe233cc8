"""The institution's node: ClientApp, local trainer and data loading at the node."""
