"""Prismatic's fused vision tower: several pretrained ViTs on the same image, patch features concatenated.

Prismatic's DINOv2 + SigLIP backbone runs both towers on the same image at the same resolution,
takes each tower's second-to-last layer, drops the tokens that are not patches (DINOv2's CLS and
register tokens), and concatenates the two feature vectors of every patch (1024 + 1152 = 2176
values for ViT-L + SO400M) before the MLP projector. ``FusedVisionModel`` does exactly that inside a
``LlavaForConditionalGeneration``: it is the model's ``vision_tower``, its output is one hidden
state (the fused patches), so the LLaVA config uses ``vision_feature_layer = -1`` and the ``full``
strategy, and each tower's own feature layer lives in this config.

One image processor feeds all towers (the SigLIP one: a plain resize to a square, Prismatic's
"resize-naive"); the towers' own normalisations differ (SigLIP 0.5/0.5, DINOv2 ImageNet mean/std),
and since normalising is affine per channel, each tower re-normalises the shared pixels exactly
(``renormalise``) instead of needing its own copy of the image.

Importing this module registers the classes with transformers' Auto classes, so a checkpoint with
a fused tower loads with ``LlavaForConditionalGeneration.from_pretrained`` (``models.checkpoint``
imports it first). vLLM does not know this tower: serve such checkpoints with ``--backend hf``.
"""

from __future__ import annotations

import torch
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling

MODEL_TYPE = "vlmdyn_fused_vision"


class FusedVisionConfig(PretrainedConfig):
    """``towers``: one dict per tower, in concatenation order:
    ``{"name", "config" (its config dict), "prefix_tokens", "mean", "std"}``;
    ``input_mean``/``input_std``: the normalisation of the pixels the processor gives."""

    model_type = MODEL_TYPE

    def __init__(self, towers: list[dict] | None = None, feature_layer: int = -2, image_size: int = 224,
                 patch_size: int = 14, input_mean: list[float] | None = None, input_std: list[float] | None = None,
                 **kwargs):
        self.towers = list(towers or [])
        self.feature_layer = int(feature_layer)
        self.image_size, self.patch_size = int(image_size), int(patch_size)
        self.input_mean = list(input_mean or [0.5, 0.5, 0.5])
        self.input_std = list(input_std or [0.5, 0.5, 0.5])
        self.hidden_size = sum(int(t["config"]["hidden_size"]) for t in self.towers)
        super().__init__(**kwargs)


def tower_config(entry: dict) -> PretrainedConfig:
    cfg = dict(entry["config"])
    return AutoConfig.for_model(cfg.pop("model_type"), **cfg)


class FusedVisionModel(PreTrainedModel):
    config_class = FusedVisionConfig
    main_input_name = "pixel_values"
    base_model_prefix = "fused"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def __init__(self, config: FusedVisionConfig, towers: list[torch.nn.Module] | None = None):
        super().__init__(config)
        self.towers = torch.nn.ModuleList(towers if towers is not None else
                                          [AutoModel.from_config(tower_config(t)) for t in config.towers])
        self.post_init()
        # transformers gathers these from direct children only; the towers sit in a ModuleList
        for t in self.towers:
            self._no_split_modules.update(getattr(t, "_no_split_modules", None) or ())
            self._skip_keys_device_placement.update(getattr(t, "_skip_keys_device_placement", None) or ())

    def _init_weights(self, module):
        pass   # every tower is a pretrained model that initialises (or loads) its own weights

    def renormalise(self, i: int, pixel_values: torch.Tensor) -> torch.Tensor:
        """The shared pixels in tower ``i``'s own normalisation: (x * in_std + in_mean - mean) / std per channel."""
        c, t = self.config, self.config.towers[i]
        kw = {"device": pixel_values.device, "dtype": pixel_values.dtype}
        in_mean, in_std = torch.tensor(c.input_mean, **kw), torch.tensor(c.input_std, **kw)
        mean, std = torch.tensor(t["mean"], **kw), torch.tensor(t["std"], **kw)
        return pixel_values * (in_std / std).view(1, -1, 1, 1) + ((in_mean - mean) / std).view(1, -1, 1, 1)

    def forward(self, pixel_values: torch.Tensor, output_hidden_states=None, return_dict=None, **kwargs):
        feats = []
        for i, (tower, entry) in enumerate(zip(self.towers, self.config.towers)):
            out = tower(pixel_values=self.renormalise(i, pixel_values), output_hidden_states=True)
            feats.append(out.hidden_states[self.config.feature_layer][:, int(entry["prefix_tokens"]):])
        fused = torch.cat(feats, dim=-1)
        return BaseModelOutputWithPooling(last_hidden_state=fused, hidden_states=(fused,))


AutoConfig.register(MODEL_TYPE, FusedVisionConfig, exist_ok=True)
AutoModel.register(FusedVisionConfig, FusedVisionModel, exist_ok=True)
