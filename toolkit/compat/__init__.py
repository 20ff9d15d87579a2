"""Stand-ins for the AWS container packages sagemaker_inference, sagemaker_training and sagemaker_containers."""
