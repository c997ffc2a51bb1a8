"""Convert 2D ImageNet ResNet checkpoints (Detectron, timm, torchvision) into the torchvision-layout
state dict that `vidgn.models.inflate.load_pretrained_2d` inflates, with the source's input
convention (channel order, pixel scale, mean, std) folded into conv1. `vidgn convert-2d` is the
command; docs/pretrained.md says where each file comes from and what is exact."""
from vidgn.models.convert.convention import (
    DETECTRON, SOURCES, TORCHVISION, VIDGN_DEFAULT, FoldReport, InputConvention, fold_input_convention,
)
from vidgn.models.convert.detectron import (
    detectron_blob_name, detectron_to_torchvision, read_detectron_pickle, torchvision_to_detectron,
)
from vidgn.models.convert.errors import ConvertError
from vidgn.models.convert.layout import ResNetLayout, check_resnet_layout
from vidgn.models.convert.state_files import read_state_file

__all__ = [
    "ConvertError", "DETECTRON", "FoldReport", "InputConvention", "ResNetLayout", "SOURCES", "TORCHVISION",
    "VIDGN_DEFAULT", "check_resnet_layout", "detectron_blob_name", "detectron_to_torchvision", "fold_input_convention",
    "read_detectron_pickle", "read_state_file", "torchvision_to_detectron",
]
