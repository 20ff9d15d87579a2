"""The floor for `train`: a bare Python parent that runs the user's script as a child with the
same arguments and exits with its status. Nothing else: no config parsing, no logging.

Usage: python train_floor.py CODE_DIR SCRIPT [ARGS...]   (SM_MODEL_DIR comes from the caller)
"""

import subprocess
import sys

code_dir, script, args = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.exit(subprocess.run([sys.executable, script, *args], cwd=code_dir).returncode)
