import numpy as np
import pytest
import torch

from rnnlm.data.splits import TBPTTBatches, min_train_tokens, split_ids
from rnnlm.core.errors import InputError


def test_split_is_contiguous_and_complete():
    ids = np.arange(1000)
    train, val, test = split_ids(ids, (0.9, 0.05, 0.05))
    assert (len(train), len(val), len(test)) == (900, 50, 50)
    assert np.array_equal(np.concatenate([train, val, test]), ids)
    train, val = split_ids(ids, (0.9, 0.1))
    assert train[-1] + 1 == val[0] and len(val) == 100


def test_batches_shift_targets_by_one_and_follow_streams():
    ids = np.arange(4 * 50)
    batches = TBPTTBatches(ids, batch_size=4, bptt=8)
    x, y = batches.batch(0, torch.device("cpu"))
    assert x.shape == y.shape == (4, 8) and x.dtype == torch.int64
    assert torch.equal(y, x + 1)  # teacher forcing: target is the next id
    assert x[1, 0].item() == 50  # stream 1 starts at the second quarter
    x1, _ = batches.batch(1, torch.device("cpu"))
    assert torch.equal(x1[:, 0], x[:, -1] + 1)  # the next window continues each stream


def test_epoch_wraps_and_flags_state_reset():
    batches = TBPTTBatches(np.arange(4 * 50), batch_size=4, bptt=8)
    assert batches.windows_per_epoch == 6
    assert batches.starts_epoch(0) and batches.starts_epoch(6) and not batches.starts_epoch(5)
    a, _ = batches.batch(0, torch.device("cpu"))
    b, _ = batches.batch(6, torch.device("cpu"))
    assert torch.equal(a, b)


def test_ranks_read_disjoint_streams():
    ids = np.arange(8 * 30)
    r0 = TBPTTBatches(ids, 4, 8, rank=0, world_size=2).batch(0, torch.device("cpu"))[0]
    r1 = TBPTTBatches(ids, 4, 8, rank=1, world_size=2).batch(0, torch.device("cpu"))[0]
    whole = TBPTTBatches(ids, 8, 8).batch(0, torch.device("cpu"))[0]
    assert torch.equal(torch.cat([r0, r1]), whole)


def test_memmap_ids_work(tmp_path):
    path = tmp_path / "ids.npy"
    np.save(path, np.arange(400, dtype=np.uint16))
    ids = np.load(path, mmap_mode="r")
    x, y = TBPTTBatches(split_ids(ids, (0.9, 0.1))[0], 4, 8).batch(2, torch.device("cpu"))
    assert torch.equal(y, x + 1)


def test_corpus_too_short_names_the_minimum():
    need = min_train_tokens(4, 8)
    with pytest.raises(InputError, match=f"at least {need}"):
        TBPTTBatches(np.arange(need - 1), 4, 8)


def test_a_val_text_joins_the_char_vocabulary_and_its_unseen_characters_are_counted(tmp_path):
    """The corpus and a --val-file make one vocabulary (counts added, so --min-char-count sees both texts)."""
    from rnnlm.core.config import TrainConfig
    from rnnlm.data.splits import encode_splits, unseen_in_training

    corpus = tmp_path / "c.txt"
    corpus.write_text("abcab" * 40 + "q", encoding="utf-8")  # q: once, and only at the end (a held-out split)
    config = TrainConfig(split=(0.8, 0.1, 0.1))
    plain, plain_splits, _ = encode_splits([corpus], config, None, None)
    tokenizer, splits, _ = encode_splits([corpus], config, None, None, val_text="abz 한 z")
    assert plain.chars == "abcq" and tokenizer.chars == " abcqz한"
    assert [len(s) for s in splits] == [len(s) for s in plain_splits]
    assert tokenizer.decode(splits[0]) == plain.decode(plain_splits[0])
    val_ids = tokenizer.encode("abz 한 zq")
    assert unseen_in_training(val_ids, splits[0], tokenizer, chunk=7) == (6, [" ", "q", "z", "한"])
    rare, _, _ = encode_splits([corpus], config.replace(min_char_count=2), None, None, val_text="zzq")
    assert rare.chars == "abcqz" and rare.unknown_count == 0  # q: once in each text, twice together
