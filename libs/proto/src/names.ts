// Names of proto enums as the rest of the system spells them (core, CLI, logs), in one place.
import { EncoderArch } from "./gen/adco/v1/common.js";

/** The encoder architectures by the core's names (libs/core ENCODER_ARCHS). */
export const ENCODER_ARCH_BY_NAME = {
  "resnet-mini": EncoderArch.ENCODER_ARCH_RESNET_MINI,
  "resnet-mini-wide": EncoderArch.ENCODER_ARCH_RESNET_MINI_WIDE,
  "resnet18-cifar": EncoderArch.ENCODER_ARCH_RESNET18_CIFAR,
  resnet50: EncoderArch.ENCODER_ARCH_RESNET50,
} as const;

export type EncoderArchName = keyof typeof ENCODER_ARCH_BY_NAME;

/** The core's name of a proto architecture; undefined for UNSPECIFIED or an unknown value. */
export function encoderArchName(arch: EncoderArch): EncoderArchName | undefined {
  return (Object.keys(ENCODER_ARCH_BY_NAME) as EncoderArchName[]).find(
    (n) => ENCODER_ARCH_BY_NAME[n] === arch,
  );
}
