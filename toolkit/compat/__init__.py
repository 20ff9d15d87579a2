"""Stand-ins for the AWS container packages (sagemaker_inference, sagemaker_training, sagemaker_containers)."""
