import { providerSwitch } from './disable-provider.js';

export default providerSwitch(true);
