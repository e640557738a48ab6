"""Models shaped by their dataset: the old workloads keep their exact parameters; the LM is causal and learns."""

import hashlib
import math

import numpy as np
import pytest
import torch

from backupsgd.config import build_config
from backupsgd.data import TextDataset
from backupsgd.models import build_model
from backupsgd.replica import Replica, cross_entropy

# SHA-256 of the flat initial parameters, from models.py as it was before models took their shape
# from the dataset (commit e6beee2): the digits and cifar workloads must start exactly where they did.
BEFORE = {
    ("mlp", 0): (17226, "497c90508b3212751b573481ce2745bfc958ed292ddaece98fa03a861512b140"),
    ("mlp", 3): (17226, "2725ca2c1588aaa05896899d0a28e8d9dc25423bccf17e5b9ff9783d0200f57a"),
    ("cnn", 0): (38282, "eeabb8b0a57267c4a01ec7328b934ae91849059c9b912bc526d794e49b3aeb43"),
    ("cnn", 3): (38282, "1eb03c8a83bb6d2526d7687e77c0fd033e11e9d2586a22916fa3f769a27619d5"),
    ("logreg", 0): (42, "7570c2add41c59dd6f15b37c9d4f0c7d051ada478c67e6e31d61f65892dabe6e"),
    ("logreg", 3): (42, "bbb2b9607daa3d2c03eef73e451be896e20536f5cb6ee1ad4d12db4ced18b53f"),
    ("resnet", 0): (308266, "6cd73bc5d43cf49ee9343229af16a714e860e155cb895bdc7ca91e9b891a5d3a"),
    ("resnet", 3): (308266, "b13af0f7202a38957d0c61ef2a3a1a1074210509b34592757c4f086962da05d3"),
}


def _flat(model) -> np.ndarray:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy()


@pytest.mark.parametrize("model,seed", sorted(BEFORE))
def test_old_workloads_keep_their_parameters(model, seed):
    dataset = build_config({"model": model}).workload.dataset  # the model's default, as before
    flat = _flat(build_model(model, seed, dataset))
    assert (flat.size, hashlib.sha256(flat.tobytes()).hexdigest()) == BEFORE[(model, seed)]


def test_cnn_keeps_its_state_dict_names():  # checkpoints written before still load
    names = list(build_model("cnn", 0, "digits").state_dict())
    assert names == ["1.weight", "1.bias", "3.weight", "3.bias", "7.weight", "7.bias", "9.weight", "9.bias"]


@pytest.mark.parametrize("model", ["cnn", "resnet"])
def test_image_models_take_the_shape_of_fashion_mnist(model):
    net = build_model(model, 0, "fashion-mnist")
    assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    with pytest.raises(RuntimeError):
        net(torch.zeros(3, 3, 32, 32))  # not built for CIFAR's shape


def test_gpt_is_small_causal_and_tied():
    net = build_model("gpt", 0, "pydocs")
    params = sum(p.numel() for p in net.parameters())
    assert 1e6 <= params <= 5e6
    x = torch.randint(0, 256, (2, 128))
    logits = net(x)
    assert logits.shape == (2, 128, 256)
    # causal: changing byte t changes no logit before t, and does change those from t on
    y = x.clone()
    y[:, 70] = (y[:, 70] + 1) % 256
    with torch.no_grad():
        changed = (net(y) - logits).abs().amax(dim=(0, 2))
    assert changed[:70].max() == 0 and changed[70:].min() > 0
    assert net.tokens.weight.data_ptr() in {p.data_ptr() for p in net.parameters()}


def test_cross_entropy_is_torch_s_on_classes_and_per_position_on_text():
    logits, y = torch.randn(5, 10), torch.randint(0, 10, (5,))
    assert torch.equal(cross_entropy(logits, y), torch.nn.CrossEntropyLoss()(logits, y))
    seq, targets = torch.randn(2, 3, 7), torch.randint(0, 7, (2, 3))
    per_position = torch.stack([torch.nn.functional.cross_entropy(seq[i, t:t + 1], targets[i, t:t + 1])
                                for i in range(2) for t in range(3)])
    assert torch.allclose(cross_entropy(seq, targets), per_position.mean())


def _small_corpus(context: int) -> TextDataset:
    text = b"the quick brown fox jumps over the lazy dog. " * 400
    stream = torch.frombuffer(bytearray(text), dtype=torch.uint8)
    windows = stream[torch.arange(8)[:, None] * context + torch.arange(context + 1)].long()
    return TextDataset("small", stream, torch.empty(0), windows[:, :-1], windows[:, 1:], 256, context=context)


def test_gpt_loss_falls_on_a_small_corpus():
    torch.set_num_threads(1)
    cfg = build_config({"model": "gpt", "optimizer": "adam", "lr": 3e-3, "batch_size": 4}).workload
    replica = Replica(cfg, torch.device("cpu"))
    data = _small_corpus(context=128)
    start = replica.evaluate(data)
    # At initialisation the logits are small (spread ~0.02 * sqrt(192) = 0.3): the loss is that of a uniform
    # guess over 256 bytes, ln 256, plus about half the logits' variance.
    assert start["test_loss"] == pytest.approx(math.log(256) + 0.05, abs=0.1)
    assert start["test_bits_per_byte"] == pytest.approx(start["test_loss"] / math.log(2))
    buf = replica.new_buffer()
    for step in range(40):
        replica.compute(*data.sample(0, 0, step, cfg.batch_size), out=buf)
        replica.apply(buf, 1.0)
    end = replica.evaluate(data)
    assert set(end) == {"test_loss", "test_bits_per_byte"}
    # 45 distinct bytes repeating: well under the 5.5 bits of the letters' frequencies alone
    assert end["test_bits_per_byte"] < 3.0, end
