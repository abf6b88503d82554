"""Networks: backbones by name, pretrained weights (offline where possible), classifier heads."""
