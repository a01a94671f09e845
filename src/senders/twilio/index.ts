/** Twilio senders (SMS, WhatsApp, voice) and the Lookup line-type gate, each one file. */
export { twilioSms, type TwilioSmsOptions, type TwilioSmsFrom, type TwilioClientLike } from './sms.js';
export { twilioWhatsApp, type TwilioWhatsAppOptions, type TwilioWhatsAppClient } from './whatsapp.js';
export { twilioVoice, type TwilioVoiceOptions, type TwilioVoiceClient, type VoiceLanguage } from './voice.js';
export { twilioLookup, TWILIO_LINE_TYPES, type TwilioLookupOptions, type TwilioLookupClient, type TwilioLineType } from './lookup.js';
export type { TwilioClientOptions, TwilioCredentials } from './client.js';
