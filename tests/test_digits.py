"""The digits dataset read without scikit-learn's import is the one scikit-learn's loader and split give (oracle:
scikit-learn itself). If scikit-learn's split ever changes, write the stored one again from the loader's call:
    .venv/bin/python -c "import numpy as np; from sklearn.datasets import load_digits; \
from sklearn.model_selection import train_test_split as s; _, y = load_digits(return_X_y=True); \
tr, te = s(np.arange(len(y)), test_size=0.25, random_state=0, stratify=y); \
np.savez_compressed('backupsgd/digits_split.npz', train=tr.astype(np.int16), test=te.astype(np.int16))"
"""

import subprocess
import sys

import numpy as np
from mpirun import REPO

from backupsgd.data import load_dataset


def test_digits_are_scikit_learns_split_bit_for_bit():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x / 16.0, y, test_size=0.25, random_state=0, stratify=y)
    data = load_dataset("digits")
    for got, want in ((data.x_train, x_tr), (data.x_test, x_te), (data.y_train, y_tr), (data.y_test, y_te)):
        assert got.numpy().dtype == (np.float32 if want.dtype.kind == "f" else np.int64)
        assert np.array_equal(got.numpy(), want.astype(got.numpy().dtype))


def test_loading_digits_imports_no_scikit_learn():
    code = ("import sys; from backupsgd.data import load_dataset; load_dataset('digits'); "
            "print('sklearn' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "False"
