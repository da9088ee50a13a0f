"""
The S3 destination: bytes from the SFTP reader straight into a multipart upload of the final key.

Which module does which job:

- :mod:`.destination`: :class:`~.destination.S3Destination`, the seam's second implementation
- :mod:`.multipart`: the writer (sequential bytes in, parts up in parallel, checkpoint, publish)
- :mod:`.parts`: part arithmetic and S3's limits
- :mod:`.uploader`: parts in flight on threads
- :mod:`.manifest`: the resume state object in the bucket (data, validated)
- :mod:`.store`: reading and writing the manifest with conditional requests
- :mod:`.claim`: claiming an upload (live owners, ListParts as the truth)
- :mod:`.objects`, :mod:`.publish`: single requests on the object; completing and checking it
- :mod:`.calls`: the target, S3's errors mapped into this package's tree (:mod:`.errors`)
- :mod:`.settings`, :mod:`.owner`: the knobs, the result, the identity of a try
"""
