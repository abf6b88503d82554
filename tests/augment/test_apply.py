"""Pipelines built from config, saved and loaded; reproducible augmentation in DataLoader workers."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pipeline.augment.apply import AugmentedDataset, EpochSampler, Example, augment, detection_collate, sample_seed
from pipeline.augment.build import build_pipeline, load_pipeline, save_pipeline
from pipeline.config import compose

pytestmark = pytest.mark.xdist_group("augment_apply")  # its module fixture is built once, on one worker


@pytest.fixture(scope="module")
def detector_cfg():
    return compose(["augment.detector.input_size=[160,160]"]).augment.detector


def examples(n=12, size=(96, 128)):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        boxes = np.array([[10, 10, 40, 50], [60, 20, 100, 70]], np.float32)
        out.append(Example(image, boxes, np.array([i % 3, 1])))
    return out


def test_saved_pipeline_reproduces_the_built_one(tmp_path, detector_cfg):
    built = build_pipeline(detector_cfg, train=True)
    save_pipeline(built, tmp_path / "p.json")
    loaded = load_pipeline(tmp_path / "p.json")
    assert A.to_dict(loaded) == A.to_dict(built)
    example = examples(1)[0]
    a, b = augment(built, example, seed=5), augment(loaded, example, seed=5)
    assert np.array_equal(a.image, b.image) and np.allclose(a.boxes, b.boxes) and (a.labels == b.labels).all()


def test_eval_pipeline_only_resizes(detector_cfg):
    pipeline = build_pipeline(detector_cfg, train=False)
    out = augment(pipeline, Example(np.zeros((80, 160, 3), np.uint8), np.array([[0, 0, 160, 80]], np.float32),
                                    np.array([2])))
    assert out.image.shape == (160, 160, 3)  # letterbox: scaled by 1, padded 40 px top and bottom
    assert np.allclose(out.boxes, [[0, 40, 160, 120]]) and out.labels.tolist() == [2]
    assert out.labels.dtype == np.int64


def test_missing_target_and_foreign_transform_are_refused():
    plain = {"train": {}, "input_size": [8, 8], "resize": "none", "pad_fill": 114, "boxes": None}
    with pytest.raises(ValueError, match="needs a _target_"):
        build_pipeline({**plain, "train": {"flip": {"p": 0.5}}}, train=True)
    with pytest.raises(ValueError, match="not an albumentations transform"):
        build_pipeline({**plain, "train": {"x": {"_target_": "collections.OrderedDict"}}}, train=True)
    with pytest.raises(ValueError, match="resize"):
        build_pipeline({**plain, "resize": "squash"}, train=False)


def test_missing_pipeline_file_names_the_stage(tmp_path):
    with pytest.raises(FileNotFoundError, match="dvc repro augment"):
        load_pipeline(tmp_path / "nope.json")


@pytest.mark.parametrize("fmt", ["coco", "yolo", "albumentations"])
def test_other_box_formats_give_the_same_boxes(detector_cfg, fmt):
    cfg = {**detector_cfg, "boxes": {**detector_cfg.boxes, "format": fmt}}
    example = examples(1)[0]
    ours = augment(build_pipeline(cfg, train=True), example, seed=3)
    voc = augment(build_pipeline(detector_cfg, train=True), example, seed=3)
    assert np.allclose(ours.boxes, voc.boxes, atol=1e-3) and (ours.labels == voc.labels).all()


def test_classification_path_has_no_boxes():
    pipeline = build_pipeline(compose(["augment.classifier.input_size=[64,64]"]).augment.classifier, train=True)
    out = augment(pipeline, Example(np.zeros((50, 70, 3), np.uint8), label=3), seed=1)
    assert out.image.shape == (64, 64, 3) and out.label == 3 and len(out.boxes) == 0


def loader_batches(num_workers, epochs=2, seed=11):
    data = examples()
    pipeline = build_pipeline(compose(["augment.detector.input_size=[160,160]"]).augment.detector, train=True)
    dataset = AugmentedDataset(len(data), data.__getitem__, pipeline, seed=seed)
    sampler = EpochSampler(len(data), shuffle=True, seed=seed)
    loader = DataLoader(dataset, batch_size=4, sampler=sampler, num_workers=num_workers, collate_fn=detection_collate)
    result = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        result.append(list(loader))
    return result


def same_batches(a, b) -> bool:
    return all(
        torch.equal(x["images"], y["images"]) and all(torch.equal(p, q) for p, q in zip(x["boxes"], y["boxes"]))
        for ea, eb in zip(a, b) for x, y in zip(ea, eb)
    )


def test_workers_are_seeded_per_sample_and_epoch():
    """Same seed: identical batches with 0 or 2 workers; epochs and samples differ from each other."""
    in_process = loader_batches(num_workers=0)
    with_workers = loader_batches(num_workers=2)
    assert same_batches(in_process, with_workers)
    assert same_batches(with_workers, loader_batches(num_workers=2))
    first, second = in_process
    assert not torch.equal(first[0]["images"], second[0]["images"])  # a new epoch, new augmentations
    # the classic bug: every worker replaying one random stream; here seeds differ per sample
    seeds = {sample_seed(11, 0, i) for i in range(12)}
    assert len(seeds) == 12
    assert not same_batches(in_process, loader_batches(num_workers=0, seed=12))


def test_sampler_shuffles_per_epoch_deterministically():
    sampler = EpochSampler(10, seed=1)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    assert sorted(i for _, i in first) == list(range(10)) and {e for e, _ in second} == {1}
    assert [i for _, i in first] != [i for _, i in second]
    sampler.set_epoch(0)
    assert list(sampler) == first


def training_batches(data, epochs=2) -> list[list[dict]]:
    """The batches of the training's train loader over ``epochs``, as Lightning asks for them (the
    loader again every epoch, its sampler told the epoch)."""
    seen = []
    for epoch in range(epochs):
        loader = data.train_dataloader()
        loader.sampler.set_epoch(epoch)
        seen.append(list(loader))
    return seen


def test_training_loaders_keep_their_processes_and_give_the_same_batches_for_any_count(tiny_data):
    from pipeline.classify.data import ClassificationData
    from pipeline.detect.data import DetectionData

    manifest, pipelines = tiny_data / "prepared/manifest.json", tiny_data / "augment"
    in_process = DetectionData(manifest, pipelines, batch_size=4, num_workers=0, seed=3)
    with_workers = DetectionData(manifest, pipelines, batch_size=4, num_workers=2, seed=3)
    assert with_workers.train_dataloader() is with_workers.train_dataloader()  # made once: workers persist
    assert with_workers.train_dataloader().persistent_workers and not in_process.train_dataloader().persistent_workers
    assert same_batches(training_batches(in_process), training_batches(with_workers))
    patches = [ClassificationData(manifest, pipelines, 8, workers, 3, 1, 1, 0.2) for workers in (0, 2)]
    first, second = (training_batches(p) for p in patches)
    assert all(torch.equal(x["images"], y["images"]) for ea, eb in zip(first, second) for x, y in zip(ea, eb))
    assert not torch.equal(first[0][0]["images"], first[1][0]["images"])  # each epoch its own augmentation


def test_decoded_images_are_kept_between_epochs_and_change_no_batch(tiny_data, monkeypatch):
    from pipeline.classify.data import ClassificationData
    from pipeline.detect.data import DetectionData
    from pipeline.io import image_cache

    decoded = []
    real = image_cache.read_image
    monkeypatch.setattr(image_cache, "read_image", lambda path: decoded.append(path) or real(path))
    manifest, pipelines = tiny_data / "prepared/manifest.json", tiny_data / "augment"
    def same_images(a, b) -> bool:
        return all(torch.equal(x["images"], y["images"]) for ea, eb in zip(a, b) for x, y in zip(ea, eb))

    for make, same in ((lambda mb: DetectionData(manifest, pipelines, 4, 0, 3, mb), same_batches),
                       (lambda mb: ClassificationData(manifest, pipelines, 8, 0, 3, 1, 1, 0.2, image_cache_mb=mb),
                        same_images)):
        decoded.clear()
        cached = training_batches(make(64), epochs=3)
        assert len(decoded) == len(set(decoded)) > 0  # each image decoded once, in the first epoch
        uncached = make(0)
        assert same(cached, training_batches(uncached, epochs=3))
        assert not uncached.images.images  # a budget of 0 keeps nothing
    tiny = image_cache.DecodedImages(0.01)  # 10 kB: less than one image
    tiny.pixels(decoded[0])
    assert tiny.used == 0 and not tiny.images
