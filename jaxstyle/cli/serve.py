"""`jaxstyle serve`: the studio, a local web page over all three engines."""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
import threading
import webbrowser
from collections.abc import Callable
from pathlib import Path

from jaxstyle.cli.common import (
    UsageError,
    add_weights_option,
    load_params,
    log,
    positive_int,
)

EXAMPLES = [
    "jaxstyle serve",
    "jaxstyle serve --port 8080 --open",
    "jaxstyle serve --paintings ../shared/images",
]


def add_parser(commands: argparse._SubParsersAction,
               add_command: Callable[..., argparse.ArgumentParser]) -> None:
    from jaxstyle.serve.uploads import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS

    p = add_command(commands, "serve", "the studio: a local web page to paint with all three "
                    "engines (needs the serve extra)", EXAMPLES)
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to listen on; anything but loopback lets others on that "
                        "network use the page")
    p.add_argument("--port", type=int, default=8000, help="TCP port (0: any free one)")
    p.add_argument("--open", action="store_true", help="open the page in a browser")
    p.add_argument("--paintings", metavar="DIR",
                   help="offer every image in this folder as a painting (besides the packaged "
                        "The Starry Night)")
    p.add_argument("--max-upload-mb", type=positive_int, default=DEFAULT_MAX_BYTES // 2 ** 20,
                   help="largest upload, MB")
    p.add_argument("--max-pixels", type=positive_int, default=DEFAULT_MAX_PIXELS,
                   help="largest upload, pixels")
    add_weights_option(p)
    p.add_argument("--any-model", default="any", metavar="MODEL",
                   help="the 'Any painting' engine's model: any, any-vgg, wct (its Levels and "
                        "Whitening controls) or a file")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    p.set_defaults(handler=cmd_serve)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free one); UsageError if it cannot be."""
    try:
        family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def painting_files(folder: str | None) -> tuple[Path, ...]:
    if folder is None:
        return ()
    from jaxstyle.data import list_images

    root = Path(folder)
    if not root.is_dir():
        raise UsageError(f"--paintings {folder}: no such folder")
    return tuple(list_images(root))


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from jaxstyle.serve import JobQueue, Studio, UploadStore, create_app
        from jaxstyle.serve.app import LOOPBACK_HOSTS
    except ImportError as exc:
        raise UsageError(f"jaxstyle serve needs the serve extra ({exc.name} is missing): "
                         "pip install 'jaxstyle[serve]'") from None
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be in [0, 65535], got {args.port}")
    paintings = painting_files(args.paintings)
    from jaxstyle.arbitrary.decoderfile import is_decoder_header
    from jaxstyle.errors import JaxstyleError
    from jaxstyle.feedforward.apply import resolve_model
    from jaxstyle.paramfile import read_header

    try:  # a wrong --any-model fails here, in one line, not on the first job
        header = read_header(resolve_model(args.any_model)[0])
    except JaxstyleError as exc:
        raise UsageError(f"--any-model: {exc}") from None
    if not is_decoder_header(header):
        raise UsageError(f"--any-model {args.any_model}: not an arbitrary-style model")
    loopback = is_loopback(args.host)
    if not loopback:
        print(f"warning: serving on {args.host}: anyone who can reach this machine on that "
              "network can use the page, upload images and spend its CPU", file=sys.stderr)
    quiet = args.quiet
    sock = bind(args.host, args.port)
    port = sock.getsockname()[1]
    studio = Studio(vgg_params=lambda: load_params(args.weights, quiet), paintings=paintings,
                    decoder=args.any_model,
                    uploads=UploadStore(args.max_upload_mb * 2 ** 20, args.max_pixels))
    app = create_app(studio, JobQueue(), allowed_hosts=LOOPBACK_HOSTS if loopback else None)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning" if quiet else "info",
                                           access_log=False))
    url = f"http://{'127.0.0.1' if loopback else args.host}:{port}/"
    log(f"jaxstyle studio: {url} (Ctrl-C stops it)", quiet)
    if args.open:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    # The server runs in a thread so that Ctrl-C reaches this one: uvicorn then shuts down
    # cleanly (the lifespan removes the uploads) instead of re-raising the signal mid-exit.
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        server.should_exit = True
        thread.join(30)
        log("jaxstyle studio stopped", quiet)
    finally:
        studio.uploads.close()
    return 0
