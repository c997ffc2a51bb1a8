"""I3D ResNet models with selectable normalization (BN, GN, LN, IN, SyncBN, FrozenBN, sub-batch BN).

    I3DResNet            the network (vidgn.models.i3d)
    make_norm / is_norm  the norm factory and predicate (vidgn.models.norms)
    update_bn_stats      precise BN (vidgn.models.precise_bn)
    load_pretrained_2d   inflate a 2D torchvision ResNet checkpoint (vidgn.models.inflate)
"""
from vidgn.models.i3d import I3DResNet
from vidgn.models.inflate import InflateReport, inflate_2d_state_dict, load_pretrained_2d
from vidgn.models.norms import FrozenBatchNorm3d, SubBatchNorm3d, is_batch_norm, is_norm, make_norm
from vidgn.models.precise_bn import update_bn_stats

__all__ = [
    "I3DResNet", "make_norm", "is_norm", "is_batch_norm", "update_bn_stats",
    "load_pretrained_2d", "inflate_2d_state_dict", "InflateReport", "SubBatchNorm3d", "FrozenBatchNorm3d",
]
