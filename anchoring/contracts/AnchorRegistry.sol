// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

interface IAuthorityRegistry {
    function countryOf(address account) external view returns (bytes2);
}

/// @title PHRX anchor registry: Merkle roots of batches of FHIR resource versions.
/// @notice Only current authorities may anchor. The first record of a root is final:
///         re-anchoring the same root is a no-op (no revert, so retries after a lost
///         receipt are safe; no overwrite, so the earliest timestamp stands).
contract AnchorRegistry {
    struct Anchor {
        address authority;
        bytes2 country;
        uint64 blockNumber;
        uint64 timestamp;
        uint32 leafCount;
        bytes32 batchId;
    }

    IAuthorityRegistry public immutable authorityRegistry;
    mapping(bytes32 => Anchor) private anchors;
    uint256 public anchorCount;

    event Anchored(
        bytes32 indexed root,
        address indexed authority,
        bytes2 country,
        uint32 leafCount,
        bytes32 batchId
    );

    error NotAuthority();
    error EmptyRoot();
    error EmptyBatch();

    constructor(IAuthorityRegistry registry) {
        authorityRegistry = registry;
    }

    /// @return fresh false when the root was already anchored (record left unchanged).
    function anchor(bytes32 root, uint32 leafCount, bytes32 batchId) external returns (bool fresh) {
        bytes2 country = authorityRegistry.countryOf(msg.sender);
        if (country == bytes2(0)) revert NotAuthority();
        if (root == bytes32(0)) revert EmptyRoot();
        if (leafCount == 0) revert EmptyBatch();
        if (anchors[root].blockNumber != 0) return false;
        anchors[root] = Anchor(
            msg.sender, country, uint64(block.number), uint64(block.timestamp), leafCount, batchId
        );
        anchorCount++;
        emit Anchored(root, msg.sender, country, leafCount, batchId);
        return true;
    }

    /// @notice All-zero record if `root` was never anchored.
    function getAnchor(bytes32 root) external view returns (Anchor memory) {
        return anchors[root];
    }
}
