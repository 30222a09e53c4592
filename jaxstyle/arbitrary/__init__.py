"""Engine 3, arbitrary style: any painting as the style in one pass (AdaIN, Huang & Belongie
2017), with the shared VGG19 as the encoder and a decoder trained once for all styles; the
WCT chain (`multilevel`) transforms each level's features by whitening and colouring (`wct`)
or by exact distribution matching (`efdm`); `structure` puts the photo's blurred luminance
back under a one-pass picture."""

from jaxstyle.arbitrary.adain import StyleStats, adain, adain_target, channel_stats
from jaxstyle.arbitrary.decoder import Decoder, decoder_channels, init_decoder
from jaxstyle.arbitrary.decoderfile import load_decoder, save_decoder
from jaxstyle.arbitrary.efdm import EFDMStats, efdm_target, quantile_stats
from jaxstyle.arbitrary.structure import restore_layout
from jaxstyle.arbitrary.transfer import ArbitraryStylizer, style_statistics, stylize_arrays

__all__ = ["ArbitraryStylizer", "Decoder", "EFDMStats", "StyleStats", "adain", "adain_target",
           "channel_stats", "decoder_channels", "efdm_target", "init_decoder", "load_decoder",
           "quantile_stats", "restore_layout", "save_decoder", "style_statistics", "stylize_arrays"]
