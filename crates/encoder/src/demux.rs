pub fn demux(_p: &std::path::Path) -> Result<crate::SampleStream, crate::EncodeError> {
    todo!()
}
