"""A training script written the way scripts for the official SageMaker containers are:
hyperparameters arrive as command-line arguments, folders as SM_* variables."""

import argparse
import csv
import json
import os

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--learning-rate", type=float, default=0.1)
parser.add_argument("--model-dir", default=os.environ["SM_MODEL_DIR"])
parser.add_argument("--train", default=os.environ["SM_CHANNEL_TRAIN"])
parser.add_argument("--test", default=os.environ["SM_CHANNEL_TEST"])
args = parser.parse_args()


def load(folder):
    rows = []
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name)) as fh:
            rows += [(float(x), float(y)) for x, y in csv.reader(fh)]
    return rows


# Fit y = w * x by gradient descent: small, but a real model trained on the channel's data.
train, test = load(args.train), load(args.test)
w = 0.0
for epoch in range(args.epochs):
    grad = sum(2 * (w * x - y) * x for x, y in train) / len(train)
    w -= args.learning_rate * grad
    loss = sum((w * x - y) ** 2 for x, y in test) / len(test)
    print(f"epoch {epoch + 1}/{args.epochs}: w={w:.4f} test_mse={loss:.4f}", flush=True)

with open(os.path.join(args.model_dir, "model.json"), "w") as fh:
    json.dump({"w": w, "epochs": args.epochs, "hosts": json.loads(os.environ["SM_HOSTS"])}, fh)
print("model saved to", os.path.join(args.model_dir, "model.json"))
