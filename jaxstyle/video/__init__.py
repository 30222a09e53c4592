"""Stylize a video frame by frame with PyAV, decoding, stylizing and encoding at the same time.

The caller's network (`stylize_batch`) runs on the calling thread. One background thread
decodes and resizes frames into a bounded queue, another encodes the stylized frames from a
bounded queue, so FFmpeg's work overlaps the network's and memory stays flat for any length.
This package never imports jax: the network comes in as a plain function of numpy batches.

Decisions:
- Sizes are the stored frame size. Rotation metadata (phone videos) is copied onto the output
  stream, so players turn the stylized video exactly as they turned the input; frames are
  stylized as stored (sideways, if so), which a convolutional network does not mind, and no
  pixels are resampled for it.
- yuv420p, the pixel format players expect, stores colour at half resolution and so needs
  even sizes. The output size is made even by rounding down; where that is the only change
  (at most one row/column) the frame is cropped rather than resampled, which keeps it sharp.
- Audio packets are copied unchanged (no re-encoding, no quality loss). Where the output
  container cannot hold that codec, the call fails before writing anything and says so.
- The last batch holds the frames left over (fewer than batch_size) unless pad_last_batch,
  which repeats its last frame up to batch_size (one shape for a jitted network).
- Output timestamps are the input's (shifted to start at 0), in the input's time base: frame
  rate, frame count and duration carry over exactly, variable frame rates included.

Modules, data flowing one way: `common` (errors, results, frame sizes) <- `read` (probe,
frames) <- `write` (encoder, audio copy, temporary file) and `threads` (workers, queues) <-
`stylize` (the loop). The public names are importable from `jaxstyle.video`.
"""

from jaxstyle.flicker import temporal_smooth
from jaxstyle.video.common import (
    CONTAINERS,
    QUEUE_BATCHES,
    VideoError,
    VideoInfo,
    VideoInterrupted,
    VideoResult,
    fit_frame,
    output_size,
    to_uint8,
)
from jaxstyle.video.read import probe_video, read_frames
from jaxstyle.video.stylize import stylize_video
from jaxstyle.video.write import partial_path, write_video

__all__ = ["CONTAINERS", "QUEUE_BATCHES", "VideoError", "VideoInfo", "VideoInterrupted",
           "VideoResult", "fit_frame", "output_size", "partial_path", "probe_video",
           "read_frames", "stylize_video", "temporal_smooth", "to_uint8", "write_video"]
