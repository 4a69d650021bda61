export { loadConfig, parseConfig } from './load.js';
export { ConfigError, formatIssue, type ConfigIssue } from './errors.js';
export { DEFAULTS, type FlowlbConfig, type DatapathMode, type XdpAttachMode, type PendingLimits } from './config.js';
export { KEY_DOCS, type KeyDoc } from './keys.js';
export { PIN_ROOT, defaultPinPath, instanceName, instanceFromArg } from './instance.js';
export { formatHostPort, parseHostPort, type HostPort } from './values.js';
