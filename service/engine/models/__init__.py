"""Model management: the runtime, the model store, adapter bundles and reward scoring."""
