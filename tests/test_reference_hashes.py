"""SHA-256 of reference-mode outputs, recorded before the vector kernels of
issue 23 and asserted after: any change in a single bit of the reference
forward pass (shipped models, and layer cases beyond them: float64 data,
which takes the unfused path, strides, padding, dilation, groups, 1-D,
both GRU forms) fails here.

The hashes were computed with the scalar kernels of refcomp/kernels/linear.py
(commit 7353ece); they are the ground truth recorded from the independent
earlier implementation, not from the code under test.
"""

import hashlib

import numpy as np
import pytest

import refcomp
from refcomp import layers as L
from refcomp.data import default_data_dir, load_split

MODEL_SHA256 = {
    "digits_mlp": "fa08ffcd536880c79b92c9276d229267b5383357c2d17a6bfa902281a05a5c2a",
    "digits_cnn": "03230d9cfecfd6fa640d7660747bec5a532a7aa7bbc4a802ef87e8525456eec2",
    "digits_lstm": "12a2a9acc08a24bfbb8e10c3fc8a8daa984078eeb39280e85d5a0c2484b8ff62",
    "digits_gru": "c42441cbf91a33ac9bbb2f09c7461ffc5a3c01ff3e032632664c8ac008208624",
    "digits_resnet": "eb95baf9107006f7056b0c1268394f5ecd4e4daac2d024496646107326b5e7e3",
}


def _sha(a):
    a = np.ascontiguousarray(a)
    return hashlib.sha256(f"{a.dtype.str}{a.shape}".encode() + a.tobytes()).hexdigest()


def _sha_model(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


@pytest.mark.parametrize("name", sorted(MODEL_SHA256))
def test_shipped_model_reference_logits_sha256(name):
    x, _ = load_split("test")
    y = refcomp.load(default_data_dir() / f"{name}.h5")(x, precision="reference")
    assert y.dtype == np.float32 and y.shape == (x.shape[0], 10)
    assert _sha_model(y) == MODEL_SHA256[name]


def _r(rng, dt, *shape):
    return rng.standard_normal(shape).astype(dt)


def _cases():
    # name -> callable(rng) returning the reference output; weights drawn
    # from a fixed seed, so each case is one fixed array.
    def conv(dt, n, c, h, w, o, k, **kw):
        def run(rng):
            g = kw.get("groups", 1)
            return L.conv2d(_r(rng, dt, n, c, h, w), _r(rng, dt, o, c // g, *k), _r(rng, dt, o),
                            **kw)
        return run

    def conv1(dt):
        def run(rng):
            return L.conv1d(_r(rng, dt, 3, 6, 17), _r(rng, dt, 10, 3, 4), _r(rng, dt, 10),
                            stride=2, padding=3, dilation=2, groups=2)
        return run

    def dense(dt, n, i, o):
        def run(rng):
            return L.dense(_r(rng, dt, n, i), _r(rng, dt, o, i), _r(rng, dt, o))
        return run

    def rnn(kind, dt, n, t, f, h, **kw):
        def run(rng):
            g = {"lstm": 4, "gru": 3}[kind]
            fn = {"lstm": L.lstm, "gru": L.gru}[kind]
            seq, st = fn(_r(rng, dt, n, t, f) * 0.5, _r(rng, dt, g * h, f) * 0.3,
                         _r(rng, dt, g * h, h) * 0.3, _r(rng, dt, g * h), _r(rng, dt, g * h), **kw)
            return np.concatenate([seq.ravel()] + [s.ravel() for s in st])
        return run

    return {
        "conv_f32_plain": conv(np.float32, 2, 3, 11, 9, 13, (3, 3)),
        "conv_f64_plain": conv(np.float64, 2, 3, 11, 9, 13, (3, 3)),
        "conv_f32_attrs": conv(np.float32, 2, 6, 12, 13, 10, (3, 2), stride=(2, 1),
                               padding=((1, 2), (0, 1)), dilation=(1, 2), groups=2),
        "conv_f64_attrs": conv(np.float64, 2, 6, 12, 13, 10, (3, 2), stride=(2, 1),
                               padding=((1, 2), (0, 1)), dilation=(1, 2), groups=2),
        "conv_f32_depthwise": conv(np.float32, 1, 5, 7, 7, 5, (3, 3), padding=1, groups=5),
        "conv_f32_1x1": conv(np.float32, 3, 7, 5, 4, 33, (1, 1)),
        "conv_f32_single": conv(np.float32, 1, 1, 3, 3, 1, (3, 3)),
        "conv_f32_wide": conv(np.float32, 2, 32, 10, 10, 64, (3, 3)),
        "conv1d_f32": conv1(np.float32),
        "conv1d_f64": conv1(np.float64),
        "dense_f32": dense(np.float32, 7, 300, 37),
        "dense_f64": dense(np.float64, 7, 300, 37),
        "dense_f32_single": dense(np.float32, 1, 1, 1),
        "lstm_f32": rnn("lstm", np.float32, 5, 4, 8, 19),
        "lstm_f64": rnn("lstm", np.float64, 5, 4, 8, 19),
        "gru_f32": rnn("gru", np.float32, 5, 4, 8, 19),
        "gru_f64": rnn("gru", np.float64, 5, 4, 8, 19),
        "gru_f32_reset_before": rnn("gru", np.float32, 5, 4, 8, 19, reset_after=False),
    }


CASE_SHA256 = {
    "conv1d_f32": "423b34571977c24717c010c6379e9ba1d949cb825fe2d9fb797aa00ec0cef9b9",
    "conv1d_f64": "8d1f3d4b4ee122d002c71b60c95c7fec7cd7c3be0c662a2553513b8721d15ba1",
    "conv_f32_1x1": "9cebb9e69cdd219d467a5b44047746ad6cd8a6464beaef67017c8ba18839cf76",
    "conv_f32_attrs": "be419f0a5ea5181cfaf7113a63c8aba0c84f9e695765e01f8a592a88930208c0",
    "conv_f32_depthwise": "c4d42233d2f67edff6469899e74709966f580cc3b5ac4d6e8e73a3f20c3888d7",
    "conv_f32_plain": "d7518faf57c397d8198179af38ecf400906c06d93611b177fa57f1aa07c9a860",
    "conv_f32_single": "93c8be16e0d084c5278b9b53ddf4695e57b52ca15e55c2d99066d1e7172bd483",
    "conv_f32_wide": "4ce0b37ca3fdda61e1a7ffb3e4f0aa7e143bad981848dc497ee765e6941fcff0",
    "conv_f64_attrs": "2abb359b78d1b421b6d61c1285e4af1eb05b6932429b1d9ff1e40536b47d154a",
    "conv_f64_plain": "c5d7c64bf906dbdbe180b3273244035c8b8a077b6f6bfde28b4c2eae14af156f",
    "dense_f32": "3631a650bd511c87ace48d6d220a31287f4aa354a49998949fa3f3a753039f57",
    "dense_f32_single": "9c5eef5bf2db11dd141ae06e2282f6885f9ccfcb94e53c13290d024b3369cda1",
    "dense_f64": "341e3d2515828f55071ed14fa18fd6a8dcd74151cfb899867b7b288d7e4013c9",
    "gru_f32": "3bca89a9d3cb8cdd0f500fded5ee81e7e85f71dfad648f7ad4a0cd81500b9306",
    "gru_f32_reset_before": "a8e0ee6cc9c78d2b99c51e0907bd29b1cf2fe351108a00d3171c1e7cf37e3706",
    "gru_f64": "2ae0c57afc7f70d7559986a33bb9a968d644aca0ec14b0d2c6cc111cf8b6d74c",
    "lstm_f32": "edcf10fa1cffd7a81824594b13e4b4d2aa96fed4e4c6322699c3be32cf8aff46",
    "lstm_f64": "278649ca2e0a9e71e1953eb2820e23bec07a84bb5d6944361142d4404a1cf5f4",
}


@pytest.mark.parametrize("name", sorted(_cases()))
def test_layer_reference_output_sha256(name):
    out = _cases()[name](np.random.default_rng(23))
    assert _sha(out) == CASE_SHA256[name]


if __name__ == "__main__":     # prints the table (used once, before the change)
    for k in sorted(_cases()):
        print(f'    "{k}": "{_sha(_cases()[k](np.random.default_rng(23)))}",')
