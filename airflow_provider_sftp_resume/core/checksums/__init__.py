"""
Proof against the source's own checksum: a checksum file beside it, or a digest the server computes.

- :mod:`.rule`: the knobs (:class:`~.rule.ChecksumRule`) and which checksum file belongs to a file;
- :mod:`.algorithms`: md5, sha1, sha256, sha512, told apart by digest length, and local hashing;
- :mod:`.formats`: reading ``sha256sum``/``md5sum`` output (one or many lines), BSD ``SHA256 (name) =
  hex`` and a bare digest;
- :mod:`.checkfile`: the SFTP ``check-file-name`` extension (ProFTPD's mod_sftp, Bitvise);
- :mod:`.command`: ``sha256sum`` run over the SSH connection (opt-in), the path shell-quoted;
- :mod:`.proof`: what the engine calls: gather the source's digests, compare them with the copy.
"""
