"""Fine-tuning from recorded bags: the engine (`bag_training`) and the `training_node` around it."""
