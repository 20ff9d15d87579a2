"""Names the submit tests share: moto's account, and an image URI and role in it."""

ACCOUNT = "123456789012"  # moto's
IMAGE = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/toolkit-cpu:latest"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/SageMakerRole"
