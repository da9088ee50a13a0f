"""The remote side: the protocol the engine needs, the SSH connection, the SFTP file system over asyncssh."""
