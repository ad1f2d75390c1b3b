/** LAN discovery of pp-nodes (DNS-SD `_pp-node._tcp` over mDNS). */
export { type AnnounceOptions, type Announcer, announce } from './announce.ts';
export {
  type BrowseOptions,
  type DiscoveredNode,
  NodeBrowser,
  type NodeBrowserEvents,
  rankAddresses,
} from './browse.ts';
export { fromTxt, type NodeAnnouncement, type NodeTxt, SERVICE_TYPE, toTxt } from './service.ts';
