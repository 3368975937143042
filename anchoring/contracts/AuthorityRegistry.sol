// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title PHRX authority registry: one anchoring authority per ISO 3166-1 alpha-2 country.
/// @notice Membership changes need votes from MORE than 2/3 of the current authorities.
///         Votes are re-counted against the current membership, so votes of removed
///         authorities stop counting and the quorum follows membership changes.
///         getValidators() serves Besu QBFT contract-based validator selection.
contract AuthorityRegistry {
    enum Kind { Add, Remove, Update }

    struct Authority {
        address account;
        bytes2 country;
        string fhirBaseUrl;
        string signingJwk;
        bytes encryptionKey;
    }

    struct Proposal {
        Kind kind;
        bool executed;
        address proposer;
        Authority subject;
    }

    mapping(address => Authority) private authorities;
    mapping(bytes2 => address) public authorityByCountry;
    address[] private members;
    mapping(address => uint256) private memberSlot; // index + 1; 0 = not a member

    Proposal[] private proposals;
    mapping(uint256 => mapping(address => bool)) public hasVoted;

    event AuthorityAdded(address indexed account, bytes2 indexed country);
    event AuthorityRemoved(address indexed account, bytes2 indexed country);
    event AuthorityUpdated(address indexed account, bytes2 indexed country);
    event Proposed(uint256 indexed id, Kind kind, address indexed account, address proposer);
    event Voted(uint256 indexed id, address indexed voter, uint256 votes, uint256 needed);
    event Executed(uint256 indexed id);

    error NotAuthority();
    error AlreadyVoted();
    error AlreadyExecuted();
    error UnknownProposal();
    error QuorumNotReached();
    error InvalidCountry();
    error CountryTaken();
    error AlreadyAuthority();
    error UnknownAuthority();
    error LastAuthority();

    modifier onlyAuthority() {
        if (memberSlot[msg.sender] == 0) revert NotAuthority();
        _;
    }

    /// @param country Zero (0x0000) deploys an open registry with no authority yet: the
    ///        first `requestJoin` then founds it (a shared dev chain, where contracts are
    ///        deployed before any node exists). Otherwise the deployer is the first authority.
    constructor(bytes2 country, string memory fhirBaseUrl, string memory signingJwk, bytes memory encryptionKey) {
        if (country != bytes2(0)) {
            _add(Authority(msg.sender, country, fhirBaseUrl, signingJwk, encryptionKey));
        }
    }

    // ---- views -------------------------------------------------------------------

    function getValidators() external view returns (address[] memory) {
        return members;
    }

    function isAuthority(address account) external view returns (bool) {
        return memberSlot[account] != 0;
    }

    /// @dev Zero country for non-members: lets AnchorRegistry check and label in one call.
    function countryOf(address account) external view returns (bytes2) {
        return authorities[account].country;
    }

    function authorityOf(address account) external view returns (Authority memory) {
        if (memberSlot[account] == 0) revert UnknownAuthority();
        return authorities[account];
    }

    function authorityCount() external view returns (uint256) {
        return members.length;
    }

    /// @notice Smallest vote count that is strictly more than 2/3 of n.
    function quorum(uint256 n) public pure returns (uint256) {
        return (2 * n) / 3 + 1;
    }

    function proposalCount() external view returns (uint256) {
        return proposals.length;
    }

    function getProposal(uint256 id) external view returns (Proposal memory) {
        if (id >= proposals.length) revert UnknownProposal();
        return proposals[id];
    }

    /// @notice Votes on `id` cast by accounts that are authorities now. On a removal the
    ///         subject's own vote does not count: an authority cannot block its removal.
    function currentVotes(uint256 id) public view returns (uint256 count) {
        address subject = proposals[id].kind == Kind.Remove ? proposals[id].subject.account : address(0);
        for (uint256 i = 0; i < members.length; i++) {
            if (members[i] != subject && hasVoted[id][members[i]]) count++;
        }
    }

    /// @notice Votes `id` needs now: more than 2/3 of the current authorities (on a
    ///         removal, of the authorities other than the subject).
    function votesNeeded(uint256 id) public view returns (uint256) {
        if (id >= proposals.length) revert UnknownProposal();
        Proposal storage p = proposals[id];
        bool subjectVotes = p.kind != Kind.Remove || memberSlot[p.subject.account] == 0;
        return quorum(subjectVotes ? members.length : members.length - 1);
    }

    // ---- proposals (the proposer's vote is cast immediately) ------------------------

    function proposeAdd(
        address account,
        bytes2 country,
        string calldata fhirBaseUrl,
        string calldata signingJwk,
        bytes calldata encryptionKey
    ) external onlyAuthority returns (uint256) {
        Authority memory a = Authority(account, country, fhirBaseUrl, signingJwk, encryptionKey);
        _checkAdd(a);
        return _propose(Kind.Add, a);
    }

    /// @notice A candidate node proposes itself (msg.sender) as an authority. Its own
    ///         call is no vote: only the current authorities' votes count. The first
    ///         candidate of an open registry (no authority yet) is admitted at once.
    function requestJoin(
        bytes2 country,
        string calldata fhirBaseUrl,
        string calldata signingJwk,
        bytes calldata encryptionKey
    ) external returns (uint256 id) {
        Authority memory a = Authority(msg.sender, country, fhirBaseUrl, signingJwk, encryptionKey);
        _checkAdd(a);
        id = proposals.length;
        proposals.push();
        Proposal storage p = proposals[id];
        p.kind = Kind.Add;
        p.proposer = msg.sender;
        p.subject = a;
        emit Proposed(id, Kind.Add, msg.sender, msg.sender);
        if (members.length == 0) {
            _execute(id, p);
        }
    }

    /// @notice An authority replaces its own URL and keys at once (a key rotation must
    ///         not wait for a vote); its country and address stay.
    function updateSelf(
        string calldata fhirBaseUrl,
        string calldata signingJwk,
        bytes calldata encryptionKey
    ) external onlyAuthority {
        Authority storage a = authorities[msg.sender];
        a.fhirBaseUrl = fhirBaseUrl;
        a.signingJwk = signingJwk;
        a.encryptionKey = encryptionKey;
        emit AuthorityUpdated(msg.sender, a.country);
    }

    function proposeRemove(address account) external onlyAuthority returns (uint256) {
        _checkRemove(account);
        return _propose(Kind.Remove, authorities[account]);
    }

    /// @notice Replace URL and keys of an existing authority (its country and address stay).
    function proposeUpdate(
        address account,
        string calldata fhirBaseUrl,
        string calldata signingJwk,
        bytes calldata encryptionKey
    ) external onlyAuthority returns (uint256) {
        if (memberSlot[account] == 0) revert UnknownAuthority();
        bytes2 country = authorities[account].country;
        return _propose(Kind.Update, Authority(account, country, fhirBaseUrl, signingJwk, encryptionKey));
    }

    function vote(uint256 id) external onlyAuthority {
        Proposal storage p = _open(id);
        if (hasVoted[id][msg.sender]) revert AlreadyVoted();
        hasVoted[id][msg.sender] = true;
        _tally(id, p);
    }

    /// @notice Execute a proposal whose quorum was reached through a membership change.
    function execute(uint256 id) external onlyAuthority {
        Proposal storage p = _open(id);
        if (currentVotes(id) < votesNeeded(id)) revert QuorumNotReached();
        _execute(id, p);
    }

    // ---- internals ---------------------------------------------------------------

    function _propose(Kind kind, Authority memory subject) private returns (uint256 id) {
        id = proposals.length;
        proposals.push();
        Proposal storage p = proposals[id];
        p.kind = kind;
        p.proposer = msg.sender;
        p.subject = subject;
        emit Proposed(id, kind, subject.account, msg.sender);
        hasVoted[id][msg.sender] = true;
        _tally(id, p);
    }

    function _open(uint256 id) private view returns (Proposal storage p) {
        if (id >= proposals.length) revert UnknownProposal();
        p = proposals[id];
        if (p.executed) revert AlreadyExecuted();
    }

    function _tally(uint256 id, Proposal storage p) private {
        uint256 votes = currentVotes(id);
        uint256 needed = votesNeeded(id);
        emit Voted(id, msg.sender, votes, needed);
        if (votes >= needed) _execute(id, p);
    }

    /// @dev Preconditions are re-checked: state may have changed since the proposal.
    function _execute(uint256 id, Proposal storage p) private {
        p.executed = true;
        Authority memory s = p.subject;
        if (p.kind == Kind.Add) {
            _checkAdd(s);
            _add(s);
        } else if (p.kind == Kind.Remove) {
            _checkRemove(s.account);
            _remove(s.account);
        } else {
            if (memberSlot[s.account] == 0) revert UnknownAuthority();
            Authority storage a = authorities[s.account];
            a.fhirBaseUrl = s.fhirBaseUrl;
            a.signingJwk = s.signingJwk;
            a.encryptionKey = s.encryptionKey;
            emit AuthorityUpdated(s.account, a.country);
        }
        emit Executed(id);
    }

    function _checkAdd(Authority memory a) private view {
        if (!_validCountry(a.country)) revert InvalidCountry();
        if (a.account == address(0)) revert UnknownAuthority();
        if (memberSlot[a.account] != 0) revert AlreadyAuthority();
        if (authorityByCountry[a.country] != address(0)) revert CountryTaken();
    }

    function _checkRemove(address account) private view {
        if (memberSlot[account] == 0) revert UnknownAuthority();
        if (members.length == 1) revert LastAuthority();
    }

    function _add(Authority memory a) private {
        if (!_validCountry(a.country)) revert InvalidCountry();
        authorities[a.account] = a;
        authorityByCountry[a.country] = a.account;
        members.push(a.account);
        memberSlot[a.account] = members.length;
        emit AuthorityAdded(a.account, a.country);
    }

    function _remove(address account) private {
        uint256 slot = memberSlot[account];
        address last = members[members.length - 1];
        members[slot - 1] = last; // swap-and-pop keeps getValidators() dense
        memberSlot[last] = slot;
        members.pop();
        delete memberSlot[account];
        bytes2 country = authorities[account].country;
        delete authorityByCountry[country];
        delete authorities[account];
        emit AuthorityRemoved(account, country);
    }

    /// @dev ISO 3166-1 alpha-2 shape: two upper-case ASCII letters.
    function _validCountry(bytes2 c) private pure returns (bool) {
        return _upper(c[0]) && _upper(c[1]);
    }

    function _upper(bytes1 b) private pure returns (bool) {
        return b >= 0x41 && b <= 0x5A;
    }
}
