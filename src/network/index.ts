// The service network: the daemon's bridge, host gateway addresses, one netns + veth per service.
export { DEFAULT_BRIDGE, ensureBridge, removeBridge, ensureHostAddresses, removeHostAddresses, keepaliveNames } from './bridge.js';
export type { BridgeInfo, BridgeOptions } from './bridge.js';
export { prepareServiceNetns, removeServiceNetns, SERVICE_LISTEN_BACKLOG, SERVICE_TCP_EHASH_ENTRIES } from './netns.js';
export type { PreparedNetns, PrepareOptions } from './netns.js';
export { netnsName, hostLinkName, netnsPath, NETNS_LINK, isValidIfName, MAX_IFNAME } from './names.js';
export { setLinkUp, isLinkUp, setLinkPassing, isLinkPassing, isLinkForwarding, waitLinkForwarding, setPromisc, setBridgePort, linkExists, linkMaster, isBridge, bridgePorts } from './link.js';
export type { BridgePortOptions } from './link.js';
export { defaultGateway, hostCidr, parseCidr } from './addr.js';
export type { SubnetGateway } from './addr.js';
export { stableMac } from './mac.js';
export { resetConnections } from './reset.js';
export { ip, ipBatch, bridgeTool } from './exec.js';
