"""Decoders and encoders by media type, found through the ``toolkit_decoder`` / ``toolkit_encoder``
hooks once per media type and then kept: no hook is called per request. The same object asks, once per
model, for the framework defaults that turn decoded data into the model's input
(``toolkit_model_defaults``) and for a default model loader (``toolkit_load_model``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

from toolkit.errors import ClientError
from toolkit.serving import mediatypes
from toolkit.serving.frameworks import ModelDefaults

Decoder = Callable[[bytes], Any]
Encoder = Callable[[Any], bytes]


class Codecs:
    """The codecs the installed plugins offer, looked up lazily and cached by media type."""

    def __init__(self, hook: Any) -> None:
        self._hook = hook
        self._decoders: dict[str, Optional[Decoder]] = {}
        self._encoders: dict[str, Optional[Encoder]] = {}
        self._types: Optional[tuple[str, ...]] = None
        self._negotiated: dict[tuple[Optional[str], str], Optional[str]] = {}

    @property
    def media_types(self) -> tuple[str, ...]:
        """Every media type some plugin says it handles, in plugin order, without repeats."""
        if self._types is None:
            seen: dict[str, None] = {}
            for result in reversed(self._hook.toolkit_media_types()):
                for media in result or ():
                    seen.setdefault(media.lower(), None)
            self._types = tuple(seen)
        return self._types

    def decoder(self, media_type: str) -> Optional[Decoder]:
        try:
            return self._decoders[media_type]
        except KeyError:
            found = self._decoders[media_type] = self._hook.toolkit_decoder(media_type=media_type)
            return found

    def encoder(self, media_type: str) -> Optional[Encoder]:
        try:
            return self._encoders[media_type]
        except KeyError:
            found = self._encoders[media_type] = self._hook.toolkit_encoder(media_type=media_type)
            return found

    def decode(self, body: bytes, content_type: str) -> Any:
        """Decode ``body``; 415 for a type no plugin decodes, 400 for a body that does not parse."""
        media = mediatypes.bare(content_type)
        decode = self.decoder(media)
        if decode is None:
            raise ClientError(
                f"Content-Type {content_type or '(none)'!r} is not supported; "
                f"send one of: {', '.join(self.decodable())}",
                status=415,
            )
        try:
            return decode(body)
        except ClientError:
            raise
        except (ValueError, UnicodeDecodeError, TypeError, RecursionError) as exc:  # RecursionError: nested too deep
            raise ClientError(f"the {media} body could not be decoded: {exc}") from exc

    def encode(self, data: Any, media_type: str) -> bytes:
        encode = self.encoder(media_type)
        if encode is None:
            raise ClientError(
                f"cannot answer in {media_type!r}; accepted: {', '.join(self.encodable())}", status=406
            )
        return encode(data)

    def negotiate(self, accept: Optional[str], default: str) -> str:
        """The media type to encode the answer in; 406 when the Accept header allows none we have."""
        key = (accept, default)
        try:
            found = self._negotiated[key]
        except KeyError:
            found = mediatypes.negotiate(accept, default, self.encodable())
            if len(self._negotiated) < 1024:
                self._negotiated[key] = found
        if found is None:
            raise ClientError(
                f"Accept {accept!r} allows no type this model answers in; use one of: "
                f"{', '.join(self.encodable())}",
                status=406,
            )
        return found

    def model_defaults(self, model: Any) -> ModelDefaults:
        """The defaults a plugin offers for this model's type, else the generic ones."""
        found = self._hook.toolkit_model_defaults(model=model)
        return found if found is not None else ModelDefaults()

    def load_model(self, model_dir: Path) -> Any:
        """The model a plugin loads from ``model_dir`` when there is no model_fn, or None."""
        return self._hook.toolkit_load_model(model_dir=model_dir)

    def decodable(self) -> tuple[str, ...]:
        return tuple(m for m in self.media_types if self.decoder(m) is not None)

    def encodable(self) -> tuple[str, ...]:
        return tuple(m for m in self.media_types if self.encoder(m) is not None)
