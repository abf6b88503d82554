"""What torch.export captures of a trained network before the ONNX conversion."""

import numpy as np
import torch
from torch import nn

from pipeline.export.build import exported_program
from pipeline.models.exportable import Exportable


def in_place_ops(program: torch.export.ExportedProgram) -> list[str]:
    return [n.target.__name__ for n in program.graph.nodes
            if n.op == "call_function" and n.target.__name__.split(".")[0].endswith("_")]


def test_in_place_activations_are_captured_out_of_place_and_the_trained_network_is_left_as_it_was():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU6(inplace=True), nn.Conv2d(4, 2, 1),
                        nn.ReLU(inplace=True)).eval()
    images = np.random.default_rng(0).random((1, 3, 12, 12), dtype=np.float32)
    program = exported_program(Exportable(graph=net, spec={}, inputs=[images], sample_images=[]))
    targets = [n.target.__name__ for n in program.graph.nodes if n.op == "call_function"]
    assert "hardtanh.default" in targets and "relu.default" in targets  # the activations, written anew
    assert in_place_ops(program) == []
    assert [m.inplace for m in net if hasattr(m, "inplace")] == [True, True]
    x = torch.from_numpy(images)
    with torch.no_grad():
        assert torch.equal(program.module()(x), net(x))
