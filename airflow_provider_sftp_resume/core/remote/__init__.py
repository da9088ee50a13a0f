"""
The remote side: the protocol the engine needs, the SSH connection, the SFTP file system over asyncssh.

- :mod:`.protocol`: what the engine needs from a remote file system (read, write, list, stat);
- :mod:`.ssh`: the connection's settings (:class:`~.ssh.SSHEndpoint`) as :func:`asyncssh.connect`
  arguments; :mod:`.hostkeys` checks host keys, :mod:`.clientkeys` loads private keys,
  :mod:`.algorithms` builds the algorithm lists, all as the stock hook (paramiko) does;
- :mod:`.connect`: one connection attempt, retried on transient errors;
- :mod:`.sftp`: the file system over asyncssh and its sessions; :mod:`.handles` the open files,
  :mod:`.startup` starting SFTP and the request sizes;
- :mod:`.failures`: SSH and SFTP errors mapped onto the error tree (:func:`~.failures.translated`).
"""
