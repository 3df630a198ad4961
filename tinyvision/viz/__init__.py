"""See inside a network: attention maps and temperature, position-embedding similarity,
receptive fields, saliency and Grad-CAM, filters and feature maps, a layer summary.

Every function returns arrays; ``tinyvision.viz.plot`` draws them to PNG.
"""
from tinyvision.viz.attention import (attention_maps, attention_rollout, cls_attention_grid,
                                      position_embedding_similarity)
from tinyvision.viz.features import feature_maps, filters
from tinyvision.viz.receptive_field import (clipped_extent, empirical_receptive_field,
                                            receptive_field)
from tinyvision.viz.saliency import grad_cam, saliency
from tinyvision.viz.summary import format_summary, summary

__all__ = ["attention_maps", "attention_rollout", "cls_attention_grid", "clipped_extent",
           "empirical_receptive_field", "feature_maps", "filters", "format_summary", "grad_cam",
           "position_embedding_similarity", "receptive_field", "saliency", "summary"]
