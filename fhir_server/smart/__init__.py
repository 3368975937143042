"""SMART App Launch 2.2 authorization server and resource-server library of a node.

Framework-free core: :mod:`.scopes`, :mod:`.tokens`, :mod:`.users`, :mod:`.clients`,
:mod:`.launch`, :mod:`.access` (bearer tokens -> :class:`~.access.AccessContext`), on
authlib's grants (:mod:`.grants`, :mod:`.assertion`) and authorization server
(:mod:`.server`), all held by :class:`~.service.SmartService`. Nothing here imports
the web framework or the HTTP adapter: the views, sign-in pages and bearer-token
hook live in the adapter's ``api/smart`` package.
"""
