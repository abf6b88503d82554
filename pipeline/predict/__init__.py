"""Run an exported bundle with onnxruntime, numpy and Pillow only: nothing here imports torch.

`bundle` loads a bundle folder, `preprocess` resizes images as the pipeline's eval transforms do,
`postprocess` turns detector outputs into boxes (per-class NMS in numpy), `draw` makes pictures,
`cli` is the `predict` command.
"""
